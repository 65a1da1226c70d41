var axios = require('axios');
var data = JSON.stringify({
  "name": "test-api-key",
  "scopes": {
    "admin": true,
    "data": {
      "pin_list": true,
      "nft_list": true
    },
    "pinning": {
      "unpin": true,
      "pin_by_hash": true,
      "pin_file_to_ipfs": true
    },
    "pin_nft": {
      "unpin_nft": true,
      "pin_nft_to_ipfs": true
    }
  }
});

var config = {
  method: 'post',
  url: '0.0.0.0:8000/api/apiKeys/',
  headers: { 
    'Authorization': 'Bearer eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJleHAiOjE2ODYwNDI0ODcsImlhdCI6MTY4NjAzNTI4NywibmJmIjoxNjg2MDM1Mjg3LCJzdWIiOiIwNzE0ZjM1Yi0wOGFhLTRjMmItOWRmNC1kZGFhMjc2ZDRlZDAifQ.dEZm_JcmojJQynZ-5Vc9ryifbpSNTrOn2PyRWw-aN_cudKFfreVUhIY17EewoKHzy88eSuNGs5oRdYkqoHaBzQ3jV6x8rytnxJKGr5QzKri7yALPRQu4tSHJtuxTwa_Ypi_ISS1S2CEfw43c5-luzpT2Cn0i45C6UjbZdPGd0Mw', 
    'Content-Type': 'application/json'
  },
  data : data
};

axios(config)
.then(function (response) {
  console.log(JSON.stringify(response.data));
})
.catch(function (error) {
  console.log(error);
});
