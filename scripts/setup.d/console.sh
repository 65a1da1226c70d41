# The console's browser tests (crates/server/tests/api/console.rs): Debian's Chromium,
# driven by playwright-core (no browser download) and checked by axe-core.
command -v chromium >/dev/null || [ -x /usr/bin/chromium ] || apt_install chromium
node_packages playwright-core@1.65.2 axe-core@4.14.1
