"""The one DAG file of openjip: an Airflow DAG for every valid workflow spec.

Specs live in ``dags/workflows/`` and ``$OPENJIP_HOME/workflows``; everything else is in
:mod:`openjip.airflow.dags` (an invalid spec becomes an import error naming it, other DAGs load).
"""

from openjip.airflow.dags import build_dags

globals().update(build_dags())
