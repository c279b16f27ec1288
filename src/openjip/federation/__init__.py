"""Federation: workflow specs travel between trusted sites as signed bundles; images never do.

A site has an Ed25519 identity (:mod:`identity`), a list of trusted peers (:mod:`peers`), an
outbox of signed bundles it publishes (:mod:`bundle`, :mod:`publish`), and an inbox of bundles
pulled from peers that wait for approval (:mod:`inbox`). Every step is written to a
hash-chained audit log (:mod:`audit`). The HTTP service (:mod:`service`) serves bundles to
authenticated peers only (:mod:`auth`).

This package never imports ``openjip.storage`` or ``openjip.index``: it has no way to reach
images or patient data, and :mod:`guard` refuses any payload that looks like DICOM.
"""
