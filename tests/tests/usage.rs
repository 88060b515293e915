//! Usage accounting on real dockerd and slapd, sampled by `serve` every
//! second: a container burning half a CPU and one idling, through a
//! recreate and a dockerd restart. The report's CPU-seconds are checked
//! against the containers' own cgroup counters, its reserved time against
//! Docker's start and stop times (exactly), and its group and course
//! totals against the accounts'.

use berth_tests::fixture::{WEBHOOK_SECRET, World};
use berth_tests::{Services, console_post, csrf_of, session_cookie, stdout, wait_for};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

fn burner(image: &str, greeting: &str) -> String {
    format!(
        "version: 1\ncontainers:\n  - name: burn\n    image: \"{image}\"\n    env: {{ GREETING: {greeting} }}\n    resources: {{ cpus: 0.5, memory: 64Mi }}\n    command: [\"/bin/busybox\", \"sh\", \"-c\", \"while :; do :; done\"]\n"
    )
}

/// Docker's time (`{{.State.StartedAt}}` …) as Unix milliseconds.
fn millis(text: &str) -> i64 {
    let t: jiff::Timestamp = text
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{text}: {e}"));
    t.as_millisecond()
}

/// CPU-seconds the container's cgroup counted so far (cgroup v2's
/// `cpu.stat`, or v1's `cpuacct.usage`).
fn cgroup_cpu(s: &Services, name: &str) -> f64 {
    let read = |path: &str| stdout(&s.docker(&["exec", name, "/bin/busybox", "cat", path]));
    let v2 = read("/sys/fs/cgroup/cpu.stat");
    if let Some(usec) = v2.lines().find_map(|l| l.strip_prefix("usage_usec ")) {
        return usec.trim().parse::<f64>().expect("a number") / 1e6;
    }
    let v1 = read("/sys/fs/cgroup/cpuacct/cpuacct.usage");
    v1.trim()
        .parse::<f64>()
        .unwrap_or_else(|_| panic!("no CPU counter in the container's cgroup: {v1}"))
        / 1e9
}

/// The report's line for `key` (`--by` `by`), as JSON.
fn line(w: &World, by: &str, key: &str) -> serde_json::Value {
    let yesterday = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .yesterday()
        .expect("a date")
        .to_string();
    let out = w.reconciler(&[
        "usage", "--from", &yesterday, "--by", by, "--output", "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("usage JSON");
    v["lines"]
        .as_array()
        .and_then(|l| l.iter().find(|l| l["key"] == key).cloned())
        .unwrap_or_default()
}

fn seconds(v: &serde_json::Value, field: &str) -> f64 {
    v[field].as_f64().unwrap_or(0.0) * 3600.0
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_counts_what_ran_through_a_recreate_and_a_dockerd_restart() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let mut w = World::new(&s, 29700);
    let alice = w.account("ua", &["students"]);
    let bob = w.account("ub", &["students"]);
    let root = w.account("uroot", &["admins"]);
    w.set_password(&alice, "a-pw");
    w.set_password(&root, "r-pw");
    w.site_overrides.extra = "admin_token_env: BERTH_ADMIN_TOKEN\n".into();
    let course = w.group("course", &[&alice]);
    w.site_overrides.policy_extra =
        format!("  usage: {{ sample_every: 1s, courses: [{course}] }}\n");
    let image = &s.test_image;
    // Sampling runs before anything starts: every second is counted.
    let server = w.serve();
    w.commit(&alice, Some(&burner(image, "one")), &w.mail(&alice));
    w.commit(
        &bob,
        Some(&format!(
            "version: 1\ncontainers:\n  - name: idle\n    image: \"{image}\"\n    resources: {{ cpus: 0.25, memory: 32Mi }}\n    command: [\"/bin/busybox\", \"sleep\", \"3600\"]\n"
        )),
        &w.mail(&bob),
    );
    w.apply(0);
    let burn = format!("{alice}--burn");
    let idle = format!("{bob}--idle");
    w.wait_running(&burn);
    w.wait_running(&idle);
    let inspect = |name: &str, what: &str| w.inspect(name, what).unwrap_or_default();
    // Each stretch runs until the report has counted 8 reserved seconds
    // more (16 s at half a CPU).
    let run_for_a_while = |since: f64| {
        wait_for(WAIT, "alice's usage to grow", || {
            (seconds(&line(&w, "account", &alice), "cpu_hours_reserved") >= since + 8.0)
                .then_some(())
        });
    };

    // 1: the first container, then a recreate (a changed env).
    let id1 = inspect(&burn, "{{.Id}}");
    let started1 = millis(&inspect(&burn, "{{.State.StartedAt}}"));
    run_for_a_while(0.0);
    let mut truth_cpu = cgroup_cpu(&s, &burn);
    w.commit(&alice, Some(&burner(image, "two")), &w.mail(&alice));
    w.apply(0);
    w.wait_running(&burn);
    let id2 = inspect(&burn, "{{.Id}}");
    assert_ne!(id1, id2, "recreated");
    let now = jiff::Timestamp::now();
    let until = format!("{}.{:09}", now.as_second(), now.subsec_nanosecond());
    let events = stdout(&s.docker(&[
        "events",
        "--since",
        "10m",
        "--until",
        &until,
        "--filter",
        "event=die",
        "--format",
        "{{.ID}} {{.TimeNano}}",
    ]));
    let died1: i64 = events
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("{id1} ")))
        .next_back()
        .unwrap_or_else(|| panic!("no die event of {id1} in:\n{events}"))
        .parse::<i64>()
        .expect("ns")
        / 1_000_000;
    let started2 = millis(&inspect(&burn, "{{.State.StartedAt}}"));

    // 2: the new container, then a dockerd restart (its counter begins
    // again when dockerd starts it again).
    let so_far = seconds(&line(&w, "account", &alice), "cpu_hours_reserved");
    run_for_a_while(so_far);
    truth_cpu += cgroup_cpu(&s, &burn);
    s.restart_dockerd();
    w.wait_running(&burn);
    let finished2 = millis(&inspect(&burn, "{{.State.FinishedAt}}"));
    let started3 = millis(&inspect(&burn, "{{.State.StartedAt}}"));
    assert!(started3 > finished2 && finished2 > started2);

    // 3: after the restart, then stopped by the workspace.
    let so_far = seconds(&line(&w, "account", &alice), "cpu_hours_reserved");
    run_for_a_while(so_far);
    truth_cpu += cgroup_cpu(&s, &burn);
    let stopped = burner(image, "two").replace("    command:", "    state: stopped\n    command:");
    w.commit(&alice, Some(&stopped), &w.mail(&alice));
    w.apply(0);
    wait_for(WAIT, "the burner to stop", || {
        (inspect(&burn, "{{.State.Running}}") == "false").then_some(())
    });
    let finished3 = millis(&inspect(&burn, "{{.State.FinishedAt}}"));

    // Reserved: half a CPU over exactly the three stretches Docker ran it
    // (to 20 ms of running: Docker's times are read to the millisecond).
    let within = |got: f64, want: f64| (got - want).abs() <= 0.01;
    let ran = (died1 - started1) + (finished2 - started2) + (finished3 - started3);
    let want = 0.5 * ran as f64 / 1000.0;
    let last = std::cell::Cell::new(0.0);
    let got = berth_tests::try_wait_for(WAIT, || {
        let got = seconds(&line(&w, "account", &alice), "cpu_hours_reserved");
        last.set(got);
        within(got, want).then_some(got)
    })
    .unwrap_or_else(|| {
        panic!(
            "the stop was not counted: {:.3} reserved CPU-s counted, Docker's times say {want:.3}",
            last.get()
        )
    });
    // Once counted, nothing more is added while it is stopped.
    let again = wait_for(WAIT, "another sampling round", || {
        let v = line(&w, "account", &alice);
        (seconds(&v, "cpu_hours_reserved") >= got).then_some(v)
    });
    assert!(within(seconds(&again, "cpu_hours_reserved"), want));
    let used = seconds(&again, "cpu_hours_used");
    eprintln!(
        "reserved: counted {:.3} CPU-s, Docker's times say {want:.3}; used: counted {used:.2} CPU-s, the cgroups say {truth_cpu:.2}",
        seconds(&again, "cpu_hours_reserved")
    );
    assert!(
        (used - truth_cpu).abs() <= 0.1 * truth_cpu,
        "CPU-seconds counted {used:.2}, the cgroups counted {truth_cpu:.2}"
    );
    assert!(
        (seconds(&again, "memory_gib_hours_reserved") - want / 0.5 * 64.0 / 1024.0).abs()
            <= 0.02 * want / 0.5 * 64.0 / 1024.0,
        "{again}"
    );

    // Bob idled: his reserved quarter CPU, next to no CPU used.
    let b = line(&w, "account", &bob);
    assert!(seconds(&b, "cpu_hours_reserved") > 0.0, "{b}");
    assert!(seconds(&b, "cpu_hours_used") < 0.5, "{b}");

    // Groups and courses add up their members.
    let students = line(&w, "group", "students");
    let a = line(&w, "account", &alice);
    let b = line(&w, "account", &bob);
    assert_eq!(students["accounts"], 2, "{students}");
    let sum = seconds(&a, "cpu_hours_reserved") + seconds(&b, "cpu_hours_reserved");
    assert!(
        (seconds(&students, "cpu_hours_reserved") - sum).abs() < 0.5,
        "{students}"
    );
    let c = line(&w, "course", &course);
    assert_eq!(c["accounts"], 1, "{c}");
    assert!((seconds(&c, "cpu_hours_reserved") - seconds(&a, "cpu_hours_reserved")).abs() < 0.5);
    let _ = idle;

    // serve wrote last month's report (nothing ran then: a header).
    let last_month = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .first_of_month()
        .yesterday()
        .expect("a date")
        .to_string();
    let csv = w
        .state_dir()
        .join("usage")
        .join(format!("usage-{}.csv", &last_month[..7]));
    let text = std::fs::read_to_string(&csv).unwrap_or_else(|e| panic!("{}: {e}", csv.display()));
    assert!(text.starts_with("key,accounts,cpu_hours_used,"), "{text}");

    // The pages: alice's own usage, and the admin's charts, whose numbers
    // are the API's.
    let Some(b) = berth_tests::browser::Browser::start(&format!("http://{}", server.addr)).await
    else {
        return;
    };
    b.log_in(&alice, "a-pw", WAIT).await;
    b.goto("/my/usage").await;
    b.wait_text("CPU-hours per day", WAIT).await;
    let bars = b
        .eval("return [...document.querySelectorAll('#my-cpu rect[data-series]')].length")
        .await;
    assert!(bars.as_u64().unwrap_or(0) >= 1, "{bars}");
    b.screenshot("usage").await;
    b.click("form[action='/logout'] button").await;
    b.log_in(&root, "r-pw", WAIT).await;
    b.goto("/admin/usage").await;
    b.wait_text("Reserved CPU-hours per day, by group", WAIT)
        .await;
    let api = berth_tests::http_raw(
        &server.addr,
        "GET",
        "/api/v1/usage?by=group",
        &[(
            "Authorization",
            &format!("Bearer {}", berth_tests::fixture::ADMIN_TOKEN),
        )],
        b"",
    )
    .expect("the API");
    assert_eq!(api.0, 200);
    let api: serde_json::Value = serde_json::from_slice(&api.1).expect("JSON");
    let students = api["lines"]
        .as_array()
        .and_then(|l| l.iter().find(|l| l["key"] == "students").cloned())
        .expect("a students line");
    // The table shows the report's numbers; the chart's bars add up to
    // the group's reserved hours (both read after the burner stopped; bob
    // still runs, so allow his few seconds).
    let row = b
        .eval("return [...document.querySelectorAll('#usage-groups tr[data-key=students] td')].map(t => t.textContent)")
        .await;
    let reserved_cell: f64 = row[3].as_str().unwrap_or("0").parse().expect("a number");
    let api_reserved = students["cpu_hours_reserved"].as_f64().unwrap_or(0.0);
    assert!(
        (reserved_cell - api_reserved).abs() < 0.01,
        "{row} vs {students}"
    );
    let charted = b
        .eval("return [...document.querySelectorAll('#groups-cpu rect[data-series=students]')].reduce((s, r) => s + parseFloat(r.dataset.value), 0)")
        .await;
    assert!(
        (charted.as_f64().unwrap_or(0.0) - api_reserved).abs() < 0.01,
        "chart {charted} vs API {api_reserved}"
    );
    b.screenshot("admin-usage").await;
}

/// Group budgets on real usage: past a `refuse` budget a revision that
/// adds CPUs or GPUs is refused with the numbers and changes nothing, and
/// the console will not start a stopped container; past a `warn` budget
/// a push is accepted and its commit status tells the student; a preview
/// shows what a branch would add against the budget.
#[tokio::test(flavor = "multi_thread")]
async fn budgets_warn_or_refuse_what_adds_once_a_groups_hours_are_spent() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let image = &s.test_image;
    let container = |name: &str, extra: &str| {
        format!(
            "  - name: {name}\n    image: \"{image}\"\n    resources: {{ cpus: 1.0, memory: 32Mi{extra} }}\n    command: [\"/bin/busybox\", \"sh\", \"-c\", \"while :; do :; done\"]\n"
        )
    };
    let ws = |containers: &[String]| format!("version: 1\ncontainers:\n{}", containers.concat());
    for (port, mode) in [(29800, "refuse"), (29900, "warn")] {
        let mut w = World::new(&s, port);
        // With GitLab, the warn world takes its revisions from pushes and
        // posts commit statuses.
        let gl = berth_tests::gitlab::statuses_mock().await;
        if mode == "warn" {
            w.use_gitlab(&gl).await;
        }
        // 0.001 CPU-hours: 3.6 s of one CPU.
        w.site_overrides.student_quota_extra =
            format!(", cpu_hours: 0.001, gpu_hours: 0, over_budget: {mode}");
        w.site_overrides.policy_extra = "  usage: { sample_every: 1s }\n".into();
        w.site_overrides.docker_endpoint = Some("gpus: 2".into());
        let alice = w.account(&format!("b{}", &mode[..1]), &["students"]);
        w.set_password(&alice, "budget-pw");
        let server = w.serve();
        let first = w.commit(&alice, Some(&ws(&[container("burn", "")])), &w.mail(&alice));
        if mode == "warn" {
            assert_eq!(
                server.push(&alice, &first, &alice, "budget-1", WEBHOOK_SECRET),
                202
            );
        } else {
            w.apply(0);
        }
        w.wait_running(&format!("{alice}--burn"));
        // serve sums the group's reserved hours after each round.
        let told = wait_for(WAIT, "the budget to be spent", || {
            let out = stdout(&w.reconciler(&["diff", "--account", &alice]));
            let share: f64 = out
                .split("CPU-hours this week (")
                .nth(1)?
                .split(' ')
                .next()?
                .parse()
                .ok()?;
            (share >= 100.0).then_some(out)
        });
        assert!(told.contains("budget: group `students` has used"), "{told}");

        // A preview of a branch that adds a container says what it costs.
        w.commit_to(&alice, "more", &w.mail(&alice), |dir| {
            std::fs::write(
                dir.join("workspace.yaml"),
                ws(&[container("burn", ""), container("more", "")]),
            )
            .expect("write");
        });
        let preview = stdout(&w.reconciler(&["plan", "--account", &alice, "--ref", "more"]));
        let more = w.commit(
            &alice,
            Some(&ws(&[container("burn", ""), container("more", "")])),
            &w.mail(&alice),
        );
        if mode == "refuse" {
            let text = w.apply(0);
            assert!(
                preview.contains("would be refused")
                    || preview.contains("a revision may not add CPUs"),
                "{preview}"
            );
            assert!(
                text.contains(&format!("revision {} rejected: budget: group `students` has used", &more[..12]))
                    && text.contains("of its 0.001 CPU-hours this week; a revision may not add CPUs (1 → 2) until it ends"),
                "{text}"
            );
            assert_eq!(
                w.inspect(&format!("{alice}--more"), "{{.Id}}"),
                None,
                "nothing was created"
            );
            // A GPU, with the GPU budget at 0: refused with its numbers.
            let gpu = w.commit(
                &alice,
                Some(&ws(&[container("burn", ", gpus: 1")])),
                &w.mail(&alice),
            );
            let text = w.apply(0);
            assert!(
                text.contains(&format!("revision {} rejected: budget: group `students` has used 0 of its 0 GPU-hours this week; a revision may not add GPUs (0 → 1)", &gpu[..12])),
                "{text}"
            );
            // Stopped, the container holds no CPU; the console will not
            // start it again while the budget is spent. (serve is started
            // again: it observes what the CLI applied when it starts, and
            // resyncs only then, so nothing restarts the container.)
            drop(server);
            let server = w.serve();
            let burn = format!("{alice}--burn");
            let auth = session_cookie(&server.addr, &alice, "budget-pw");
            let home = wait_for(WAIT, "the console to show the container", || {
                let (_, home) = berth_tests::console_get(&server.addr, &auth, "/");
                home.contains(&format!("/my/containers/{burn}/"))
                    .then_some(home)
            });
            wait_for(WAIT, "the start's resync to finish", || {
                (server.metric("berth_reconcile_duration_seconds_count") >= 1.0).then_some(())
            });
            assert!(s.docker(&["stop", "-t", "0", &burn]).status.success());
            let (code, why) = console_post(
                &server.addr,
                &auth,
                &format!("/my/containers/{burn}/start"),
                &format!("csrf={}", csrf_of(&home)),
            );
            assert_eq!(code, 409, "{why}");
            assert!(
                why.contains("budget: group `students` has used")
                    && why.contains("of its 0.001 CPU-hours this week"),
                "{why}"
            );
            assert_eq!(
                w.inspect(&burn, "{{.State.Running}}").as_deref(),
                Some("false"),
                "the console started it past a refuse budget"
            );
        } else {
            assert!(
                preview.contains("adds 1 CPU: ")
                    && preview.contains("CPU-hours of group `students` used this week"),
                "{preview}"
            );
            // Pushed: accepted, and the commit status tells the student.
            assert_eq!(
                server.push(&alice, &more, &alice, "budget-2", WEBHOOK_SECRET),
                202
            );
            let told = berth_tests::gitlab::wait_status(&gl, &more, "success").await;
            assert!(
                told.iter().any(|(state, d)| state == "success"
                    && d.contains("budget: group `students` has used")),
                "{told:?}"
            );
            w.wait_running(&format!("{alice}--more"));
            // The student is told: status (and so the console) carries it.
            let status = w.status(&alice);
            assert!(
                status["warnings"]
                    .to_string()
                    .contains("budget: group `students` has used"),
                "{status}"
            );
        }
    }
}
