"""nodeloom.agents: the drafting agent (text to graph) and the refine loop. Not built yet."""
