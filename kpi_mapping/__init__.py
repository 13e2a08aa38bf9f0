"""Turn data into KPIs: the 19 CEO-to-CTO mappings and cost per token."""
