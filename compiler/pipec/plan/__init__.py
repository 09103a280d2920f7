"""Stage 3, plan: Spec -> Plan, the one place where names, stacks, parameters and defaults are decided."""
