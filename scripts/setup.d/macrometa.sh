# Macrometa dialect: the real pyC8 client (module `c8`) and `requests` for the seed's REST sample.
python_packages pyC8==1.1.2 requests==2.34.2
