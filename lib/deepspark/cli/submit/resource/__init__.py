"""spark-submit's primary resource for ``deepspark submit STAGE``, alone in its directory.

spark-submit puts a script's directory first on ``sys.path``: this one holds nothing that could
shadow a module (the ``deepspark/io`` package would shadow the standard library's ``io``).
"""
