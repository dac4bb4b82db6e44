#!/usr/bin/env bash
# Puts the Tencent Cloud IM web SDK (npm package @tencentcloud/chat, UMD build defining TencentCloudChat)
# into the tim_chat_ui static resource as chat.js. Run it before every deploy of force-app; the file is not
# committed. Needs node/npm and the npm registry.
set -euo pipefail
VERSION="${CHAT_SDK_VERSION:-3.6.6}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dest="$here/../force-app/main/default/staticresources/tim_chat_ui/chat.js"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "@tencentcloud/chat@$VERSION" >/dev/null && tar -xzf tencentcloud-chat-"$VERSION".tgz)
cp "$work/package/index.js" "$dest"
echo "wrote $dest (@tencentcloud/chat $VERSION, $(wc -c <"$dest") bytes)"
