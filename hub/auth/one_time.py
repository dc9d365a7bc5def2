"""One-time passwords: the accounts whose password an organizer was given
(``gpuhub cohort import``) and who must choose their own at the next login.

A table of names in the hub's database, beside NativeAuthenticator's
``users_info`` and created the same way (on first use). Its own declarative
base: JupyterHub's schema upgrades never see it.
"""

from __future__ import annotations

from sqlalchemy import Column, String, inspect
from sqlalchemy.orm import declarative_base

Base = declarative_base()


class OneTimePassword(Base):
    __tablename__ = "gpuhub_one_time_passwords"
    username = Column(String(128), primary_key=True)


def ensure_table(db) -> None:
    if OneTimePassword.__tablename__ not in inspect(db.bind).get_table_names():
        OneTimePassword.__table__.create(db.bind)


def mark(db, names) -> None:
    for name in names:
        db.merge(OneTimePassword(username=name))
    db.commit()


def is_marked(db, name: str) -> bool:
    return db.get(OneTimePassword, name) is not None


def clear(db, name: str) -> None:
    row = db.get(OneTimePassword, name)
    if row is not None:
        db.delete(row)
        db.commit()
