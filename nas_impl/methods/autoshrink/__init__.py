"""AutoShrink (Zhang et al., AAAI 2020): shrinking a complete DAG cell edge by edge.

Built so far: the shrinking loop and the objectives (`shrink`), the CNN proxy's splits and the
lockstep training of a step's candidates with the official early stops (`proxy`). Not yet: the
RNN proxy, the method behind the search interface, and its workflow rules.
"""
