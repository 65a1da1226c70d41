import requests

# Constants

URL = "api-play.paas.macrometa.io"
HTTP_URL = f"https://{URL}"
FABRIC = "_system"
API_KEY = "XXXXX" # To be replaced by your apikey

# apikey keyword needs to be appended to the apikey
AUTH_TOKEN = f"apikey {API_KEY}"

# Create a HTTPS Session authenticated with apikey
session = requests.session()
session.headers.update({"content-type": 'application/json'})
session.headers.update({"authorization": AUTH_TOKEN})

# Now you can use the above session to make any API request
# For example we are calling the 'List all collections' API below
url = f"{HTTP_URL}/_fabric/{FABRIC}/_api/collection"

response = session.get(url)
print(response.text)
