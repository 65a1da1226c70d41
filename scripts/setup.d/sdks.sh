# The first-party SDKs' tests (crates/server/tests/api/sdks.rs): the Python SDK installed
# from sdks/python as a user would, pytest and the frameworks its integrations serve;
# Express and Fastify for the TypeScript SDK's middleware (the SDK itself has no
# dependencies); openapi-python-client, the independent generator of the round trip.
python_packages pytest==8.4.2 httpx==0.28.1 fastapi==0.115.6 flask==3.1.0 \
  openapi-python-client==0.28.1 "./sdks/python[fastapi,flask]"
node_packages express@5.3.0 fastify@5.12.8
