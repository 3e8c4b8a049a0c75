pub fn run(_json: bool) -> anyhow::Result<()> {
    anyhow::bail!("todo")
}
