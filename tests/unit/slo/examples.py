"""SLO file entries the rule tests share (unit and promtool integration)."""

AVAIL = {"name": "cart-avail", "service": "cart", "sli": "availability", "objective": 99.9}
FAST = {
    "name": "pay-fast",
    "service": "checkout",
    "operations": ["POST /pay"],
    "sli": "latency",
    "threshold_ms": 400,
    "objective": 99,
}
