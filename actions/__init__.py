"""What the assistant does, channel-agnostic: understood message + user state in, replies out."""
