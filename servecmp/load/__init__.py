"""The load engine: clients, Locust users and shapes, payloads, and the step engine."""
