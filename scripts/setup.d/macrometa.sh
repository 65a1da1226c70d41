# Macrometa dialect: the real pyC8 client (module `c8`) and `requests` for the seed's REST
# sample; openssl makes the self-signed certificate the https seed scripts are served with.
python_packages pyC8==1.1.2 requests==2.34.2
command -v openssl >/dev/null || apt_install openssl
