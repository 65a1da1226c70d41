# Macrometa dialect: the real pyC8 client (module `c8`) and `requests` for the seed's REST
# sample; openssl makes the self-signed certificate the https seed scripts are served with.
python_packages pyC8==1.1.2 requests==2.34.2
command -v openssl >/dev/null || apt_install openssl
# jsc8, Macrometa's JavaScript client, for the seeds' JavaScript tabs. It only speaks
# https to `api-<host>`: the tests' TLS front answers as api-keyward.test on loopback.
node_packages jsc8@1.1.0
if ! grep -qE '^127\.0\.0\.1[[:space:]].*\bapi-keyward\.test\b' /etc/hosts; then
  log "adding api-keyward.test (loopback) to /etc/hosts for the jsc8 tests"
  echo "127.0.0.1 api-keyward.test" | as_root tee -a /etc/hosts >/dev/null
fi
