"""What a site may tell others about its index: counts and histograms over an allow-list of
fields with small-cell suppression (:mod:`question`, :mod:`counts`), and the screen that finds
indexed patient data in a document about to cross the site's border (:mod:`screen`).

The federation service must never read the index; it asks the site's own web service over
loopback (:mod:`loopback`: a site-local secret), which runs these computations.
:mod:`question` and :mod:`loopback` import nothing of the index, so the federation may use them.
"""
