"""What the service publishes, defined once: payload encoders, consumer types, the ring."""
