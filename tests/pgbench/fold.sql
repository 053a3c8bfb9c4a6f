-- Maintenance passes without pause, bounded to 1,000 rows each (the
-- writers outpace them: passes go on where the last stopped).
SET usage_tracker.fold_batch_rows = 1000;
SELECT usage_tracker.run_maintenance();
