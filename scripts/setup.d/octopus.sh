# Real clients for the Octopus dialect's tests (crates/server/tests/api/octopus.rs): the
# seed's Python script needs requests; @octopusdeploy/api-client 1.4.0 is the last npm
# release with API-key methods (createApiKey, listApiKeys, revokeApiKey).
python_packages requests==2.32.3
node_packages @octopusdeploy/api-client@1.4.0
