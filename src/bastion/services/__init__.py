"""Domain services: what Bastion does, with no HTTP in it. They flush; callers commit."""
