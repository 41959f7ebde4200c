"""ProxylessNAS (Cai, Zhu & Han, ICLR 2019): binary-gated mixed edges and their architecture gradients."""
