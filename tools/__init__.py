"""Developer tools: environment set-up and the launcher behind `make run`."""
