"""AutoShrink (Zhang et al., AAAI 2020): shrinking a complete DAG cell edge by edge.

Built so far: the shrinking loop and the objectives (`shrink`). Not yet: training a step's
candidates on the proxies, the method behind the search interface, and its workflow rules.
"""
