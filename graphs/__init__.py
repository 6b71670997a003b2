"""The LOVE-R1 agent as a LangGraph graph (installed as ``lover1_plugin.graphs``)."""
