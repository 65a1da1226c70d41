# The metrics tests parse /metrics with the Prometheus project's own Python parser.
python_packages prometheus-client==0.21.1
