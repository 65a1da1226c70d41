# The forward-auth tests run the real proxies from Debian's packages.
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || apt_install nginx
command -v caddy >/dev/null || apt_install caddy
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || apt_install haproxy
