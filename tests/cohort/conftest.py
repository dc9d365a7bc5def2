import pytest

from tests.integration.hubrig import remove_test_objects


@pytest.fixture(scope="module", autouse=True)
def clean_engine(engine):
    """Each module here runs one hub of its own (a new hub id): the containers and
    volumes of the module before (team, datasets, homes) would make it refuse
    the prefix, so they go before and after every module."""
    remove_test_objects(engine)
    yield
    remove_test_objects(engine)
