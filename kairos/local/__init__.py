"""Running tasks on this machine: an embedded DynamoDB, its tables, and invoking the real handlers."""
