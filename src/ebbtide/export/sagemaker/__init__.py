"""SageMaker Application Auto Scaling: plan, render, apply, import; cron conversion."""
