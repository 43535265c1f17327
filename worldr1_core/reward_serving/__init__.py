"""Rewards scored in another process: the client, the wire format and the server, in one place.

==================  =========================================================================
module              holds
==================  =========================================================================
``client``          :class:`RemoteReward`, the :class:`~worldr1_core.interfaces.Reward` that the
                    trainer's ``RewardSet`` builds for an entry with a server; server groups
``wire``            the JSON wire format (base64 arrays, never pickle), shared by both sides
``served``          the rewards a server holds, built from the registry and a run config
``limits``          the server's settings (the ``reward serve`` flags) and its error answer
``score_request``   checking a ``POST /score`` body -> ``(names, RewardBatch)``
``batching``        the worker thread that owns the models and merges concurrent requests
``app``             the FastAPI app (``/health``, ``/score``, bearer token)
``connections``     connection caps and header deadlines given to uvicorn, rate-limited logs
``command``         ``worldr1 reward serve``, registered through ``worldr1_register_commands``
``process``         a server in a child process, ready when ``/health`` answers (tests, notebooks)
==================  =========================================================================

The server side needs the ``server`` extra (fastapi, uvicorn); the client needs httpx only when
it scores. Nothing here imports fastapi until a server is built.
"""
