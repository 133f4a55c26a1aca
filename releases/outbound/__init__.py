"""Outbound events: audit events announced outside the product, as signed webhooks and as an email asking
the ML leads for a signature. Like the sync adapters, these talk to the outside world and decide nothing;
the tasks call them after the change they announce has committed.
"""
