# What both service images' build stages end with (run as `sh services/image_tree.sh`): the
# `openjip` command, bytecode and file modes of /opt/venv and /opt/openjip.
set -eu
printf '#!/bin/sh\nexec python -m openjip.cli.main "$@"\n' > /opt/venv/bin/openjip
chmod 0755 /opt/venv/bin/openjip
# Bytecode of openjip (pip compiled the venv's): containers run with a read-only root file system
# and PYTHONDONTWRITEBYTECODE, so what is not compiled here is compiled again at every start
# (Airflow's commands started 4x slower without it).
/opt/venv/bin/python -m compileall -q /opt/openjip/src
# Readable by every user, writable by root alone, whatever the modes of the build context (a
# checkout made under umask 077 has 0600 files, which the images' non-root users cannot read).
chmod -R u+rwX,go+rX,go-w /opt/venv /opt/openjip
