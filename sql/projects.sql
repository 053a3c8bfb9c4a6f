-- Projects (seed 003): a dimension of the AI log inside an organization.
CREATE TABLE usage_tracker.projects (
    org_id     uuid        NOT NULL,
    id         uuid        NOT NULL DEFAULT pg_catalog.gen_random_uuid(),
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    name       text        NOT NULL,
    CONSTRAINT projects_pkey PRIMARY KEY (org_id, id),
    CONSTRAINT projects_name_check CHECK (pg_catalog.length(name) BETWEEN 1 AND 200)
);
-- Seed 003's callers pass only the project id.
CREATE INDEX projects_id_idx ON usage_tracker.projects (id);
COMMENT ON TABLE usage_tracker.projects IS
    'Projects of an organization (seed 003): ai_usage_log.project_id names one; created with create_project (org admins, service_role); cache analytics per project with get_dashboard_stats';
COMMENT ON COLUMN usage_tracker.projects.org_id IS 'Organization the project belongs to';
COMMENT ON COLUMN usage_tracker.projects.id IS 'Project id (seed 003''s p_project_id)';
COMMENT ON COLUMN usage_tracker.projects.created_at IS 'When it was created';
COMMENT ON COLUMN usage_tracker.projects.name IS 'Display name';
