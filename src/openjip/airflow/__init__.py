"""openjip inside Airflow: the DAG factory, the thin operators of workflow DAGs, the REST API
client that triggers runs, the series-arrival trigger hook, and the local Airflow of a site.

Only the DAG file, the factory and the operators import Airflow; the client, the trigger hook
and the local site component talk to Airflow over HTTP or as processes.
"""
