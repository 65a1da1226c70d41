# W3IPFS dialect: the seed's Node.js sample uses axios.
node_packages axios@1.21.1
