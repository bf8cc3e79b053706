"""What tests share that is not a fixture: builders of test data, readers of what the stack holds, fake endpoints.

Fixtures live in the conftest.py of the layer that uses them (tests/, tests/unit/, tests/integration/); test
modules import only from here, never from one another.
"""
