SELECT usage_tracker.run_maintenance();
