"""User behaviour analytics, ranking insights and service performance figures."""
