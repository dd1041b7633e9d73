"""Load generation: clients per server and protocol, the step engine, payloads, Locust users and shapes."""
