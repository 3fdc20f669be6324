"""Long-running soak tests (`make test-long`)."""
