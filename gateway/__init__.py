"""The walking-mileage partner gateway: domain services over SQLAlchemy."""
