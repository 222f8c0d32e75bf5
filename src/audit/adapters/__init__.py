"""What the ports are made of: memory, SQL, clocks."""
