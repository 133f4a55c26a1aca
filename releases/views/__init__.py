"""Views, one module per area. Each view parses, calls one lineage or service function, and renders."""
