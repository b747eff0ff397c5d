/*
 * Syntax check of Groovy DSL files that are not Nextflow scripts (nf-test's *.nf.test and
 * nf-test.config), with the Groovy 4 compiler of the language-server jar: each file is compiled
 * up to the CONVERSION phase (parsed into an AST), never run.
 *
 * Usage: java -cp language-server-all.jar groovy.ui.GroovyMain groovy_parse.groovy FILE...
 * Prints one tab-separated line per error (ERROR, file, line, column, message), then SUMMARY;
 * exit status 1 when any file does not parse.
 */
import org.codehaus.groovy.control.CompilationFailedException
import org.codehaus.groovy.control.CompilationUnit
import org.codehaus.groovy.control.Phases
import org.codehaus.groovy.control.messages.SyntaxErrorMessage

int nErrors = 0
args.each { name ->
    def file = new File(name).canonicalFile
    def unit = new CompilationUnit()
    unit.addSource(file)
    try {
        unit.compile(Phases.CONVERSION)
    }
    catch( CompilationFailedException e ) {
        def messages = unit.getErrorCollector().getErrors() ?: []
        messages.each { msg ->
            nErrors++
            if( msg instanceof SyntaxErrorMessage ) {
                def cause = msg.getCause()
                println(['ERROR', file, cause.getStartLine(), cause.getStartColumn(), cause.getOriginalMessage().replaceAll(/\s+/, ' ')].join('\t'))
            }
            else {
                println(['ERROR', file, 0, 0, msg.toString().replaceAll(/\s+/, ' ')].join('\t'))
            }
        }
        if( !messages ) {
            nErrors++
            println(['ERROR', file, 0, 0, e.message.replaceAll(/\s+/, ' ')].join('\t'))
        }
    }
}
println("SUMMARY\t${args.size()} files\t${nErrors} errors")
System.exit(nErrors ? 1 : 0)
