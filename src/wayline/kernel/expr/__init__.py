"""The shared expression engine: one IR (`ir`), an interpreter and a SQL compiler over it.

Front-ends (PQL for segments, journey conditions) live with the products that own the syntax
and build `ir` trees; this package knows no syntax.
"""
