"""The SIP edge's routing logic, run by Kamailio's app_python3 (entry script: kemi/routing.py)."""
