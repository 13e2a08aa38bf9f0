from llmkpi.cli import main

raise SystemExit(main())
