"""De-identification: the PS3.15 Basic Application Level Confidentiality Profile with its
options (:mod:`.profile`, generated from the standard's Table E.1-1), one walker over every
depth of a dataset (:mod:`.walker`), keyed pseudonyms and UID remapping (:mod:`.pseudonyms`),
and runs over files with a report whose check proves no identifying value is left (:mod:`.run`).
"""
