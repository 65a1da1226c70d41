# The OpenAPI contract's checks (crates/server/tests/api/openapi.rs): the validator, and
# schemathesis, which calls every operation and checks the answers against the contract.
python_packages openapi-spec-validator==0.7.1 schemathesis==4.32.5
