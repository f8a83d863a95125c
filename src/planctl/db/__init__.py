"""Database layer: the schema as code, engines, migrations and demo data."""
