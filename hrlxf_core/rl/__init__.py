"""Online fine-tuning in real SCML worlds (seed §1.4 / §5.2, docs/design.md §8b): PPO on L4 with
L2/L3 frozen (phase A), then on L2/L3/L4 together at a small learning rate (phase B).

Modules, one job each:
- ``distributions``: the stochastic policy's heads (sampling and log-probabilities, KL to the
  behaviour-cloned policy); the rollout agent and the learner call the same functions;
- ``policy``: the networks of an online policy (L2, L3, L4 and the day critic) and their files;
- ``rollout_agent``: LitaAgentHRL playing the stochastic policy and recording every decision;
- ``rollouts``: rollout worlds on the hang-proof runner, and reading their trajectories;
- ``ppo``: GAE and the clipped PPO update with its KL bound;
- ``train``: the resumable loop of iterations (rollouts, update, checkpoint).
"""
